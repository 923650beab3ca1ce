/* The kernels the network runs: the same operations as ops_ref.h, computed fast
 * (im2col + OpenBLAS sgemm for convolutions and linear layers, OpenMP threads elsewhere).
 * Each one is tested against its reference kernel in tests/test_ops_fast.c. */
#ifndef HS_OPS_H
#define HS_OPS_H

#include <stdint.h>

#include "ops_ref.h"

void hs_conv2d_forward(const float *x, int n, int h, int w, const float *weight,
                       const float *bias, const hs_conv2d_shape *s, float *y);
void hs_linear_forward(const float *x, int n, int in, const float *weight, const float *bias,
                       int out, float *y);
/* Same contract as hs_linear_backward_ref: dx overwritten (skipped when NULL), dweight and
 * dbias accumulate. */
void hs_linear_backward(const float *x, int n, int in, const float *weight, int out,
                        const float *dy, float *dx, float *dweight, float *dbias);
void hs_relu_forward(const float *x, int64_t count, float *y);
void hs_relu6_forward(const float *x, int64_t count, float *y);

#endif
