/* The elementwise kernels of the activation kinds added for MobileNet and EfficientNet
 * (sigmoid.c, silu.c, hardswish.c, hardsigmoid.c), shared with the inference plan
 * (net_run.c), which runs them over a whole buffer in any layout: count values of x into y
 * (y may be x). Each is PyTorch's definition, in the same float operation order as its CPU
 * kernel where that order is fixed. */
#ifndef HS_LAYERS_ACTIVATION_H
#define HS_LAYERS_ACTIVATION_H

#include <stdint.h>

/* exp(x) for the sigmoid kinds, in plain float arithmetic the compiler vectorises (libm's
 * expf is a call per value: it was half of EfficientNet-B0's forward time). Cephes' expf:
 * x = n ln2 + r with |r| <= ln2 / 2 (n rounded by the 1.5 x 2^23 trick, ln2 in two parts),
 * a degree-7 polynomial for e^r, 2^n put into the exponent bits; within 2 ulp of expf.
 * x is clamped to [-86, 88] (e^-86 = 4e-38 stays a normal float: denormals are slow, and
 * e^88 = 1.7e38 stays finite), which moves sigmoid and SiLU by
 * under 1e-37 there. */
static inline float hs_expf_vec(float x) {
    x = x < -86.0f ? -86.0f : x > 88.0f ? 88.0f : x;
    const float shifter = 12582912.0f; /* 1.5 x 2^23: adding it rounds to an integer */
    float n = (x * 1.44269504088896341f + shifter) - shifter;
    float r = x - n * 0.693359375f - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union {
        int32_t i;
        float f;
    } scale = {.i = ((int32_t)n + 127) << 23};
    return p * scale.f;
}

void hs_sigmoid_apply(const float *x, int64_t count, float *y);
void hs_silu_apply(const float *x, int64_t count, float *y);
void hs_hardswish_apply(const float *x, int64_t count, float *y);
void hs_hardsigmoid_apply(const float *x, int64_t count, float *y);

#endif
