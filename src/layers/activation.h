/* The elementwise kernels of the activation kinds added for MobileNet and EfficientNet
 * (sigmoid.c, silu.c, hardswish.c, hardsigmoid.c), shared with the inference plan
 * (net_run.c), which runs them over a whole buffer in any layout: count values of x into y
 * (y may be x). Each is PyTorch's definition, in the same float operation order as its CPU
 * kernel where that order is fixed. */
#ifndef HS_LAYERS_ACTIVATION_H
#define HS_LAYERS_ACTIVATION_H

#include <stdint.h>

void hs_sigmoid_apply(const float *x, int64_t count, float *y);
void hs_silu_apply(const float *x, int64_t count, float *y);
void hs_hardswish_apply(const float *x, int64_t count, float *y);
void hs_hardsigmoid_apply(const float *x, int64_t count, float *y);

#endif
