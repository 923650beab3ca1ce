/* Fast backward kernels through oneDNN's backward primitives (ops_grad_dnnl.c): the same
 * operations and the same contract as the reference backward kernels of ops_ref.h, which they
 * are tested against in tests/test_ops_grad_fast.c.
 *
 * Contract (as the reference): dx is overwritten (skipped when NULL); parameter gradients
 * (dweight, dbias, dgamma, dbeta) ACCUMULATE (+=) and are skipped when NULL. oneDNN
 * overwrites its outputs, so every plan computes parameter gradients into a scratch buffer of
 * its own and adds them to the caller's (they are small: one value per weight or channel).
 *
 * Plans. Like hs_conv_plan (ops.h), a plan is one layer for one input shape: created once
 * (oneDNN picks its kernels, allocates scratch and workspace memory), run many times without
 * allocating. Weights are NOT copied into backward plans: they change after every optimiser
 * step, so each run reads the caller's current arrays.
 *
 * Layouts. Every array here is plain NCHW float32 (weights OIHW). Where oneDNN's fastest
 * kernel wants a blocked layout (nChw8c on AVX2), the convolution plan reorders into it and
 * back inside each run. A later blocked-layout training path would give the plans
 * hs_layout arguments like hs_conv_options and skip those reorders; the place is marked
 * "LAYOUT" in ops_grad_dnnl.c.
 *
 * Fallback. When oneDNN cannot make a primitive for a plan, the plan runs the reference
 * kernel instead (single-threaded, slow but right); *_uses_dnnl says which, *_impl names the
 * kernels for benchmarks and logs. A run returns 0, or -1 if oneDNN failed while executing
 * (outputs are then undefined). */
#ifndef HS_OPS_GRAD_H
#define HS_OPS_GRAD_H

#include <stdint.h>

#include "ops_ref.h"

/* Whether plans created from now on may use oneDNN (default 1). 0 makes every new plan take
 * its fallback, so tests can check those paths on a machine where oneDNN works. */
void hs_grad_plans_use_dnnl(int on);

/* ---- convolution: backward data, backward weights and bias ------------------------------ */
typedef struct hs_conv_grad_plan hs_conv_grad_plan;

/* A plan for one convolution in training (any kernel, stride, dilation, groups, asymmetric
 * padding) on an n x in_c x h x w input: forward, backward data, backward weights and bias.
 * NULL only when out of memory. */
hs_conv_grad_plan *hs_conv_grad_plan_create(const hs_conv2d_shape *s, int n, int h, int w);
/* The forward pass in training: y = conv(x) with the CURRENT weight and bias (bias may be
 * NULL), read on every run, unlike hs_conv_plan which copies its weights at creation. Same
 * result as hs_conv2d_forward_ref within float rounding. Fallback: im2col + sgemm. */
int hs_conv_grad_plan_forward(hs_conv_grad_plan *plan, const float *x, const float *weight,
                              const float *bias, float *y);
/* x: the forward input; weight: the current weights (OIHW); dy: n x out_c x oh x ow.
 * dx = d(loss)/dx (overwritten); dweight += d(loss)/dW; dbias += sum of dy. Any of dx,
 * dweight, dbias may be NULL. */
int hs_conv_grad_plan_run(hs_conv_grad_plan *plan, const float *x, const float *weight,
                          const float *dy, float *dx, float *dweight, float *dbias);
int hs_conv_grad_plan_matches(const hs_conv_grad_plan *plan, const hs_conv2d_shape *s, int n,
                              int h, int w);
int hs_conv_grad_plan_uses_dnnl(const hs_conv_grad_plan *plan);
/* "<forward kernel> / <backward data kernel> / <backward weights kernel>". */
const char *hs_conv_grad_plan_impl(const hs_conv_grad_plan *plan);
void hs_conv_grad_plan_free(hs_conv_grad_plan *plan);

/* ---- BatchNorm in training mode (forward and backward) ---------------------------------- */
typedef struct hs_bn_grad_plan hs_bn_grad_plan;

/* For n x c x hw activations and epsilon eps (scale and shift always on: gamma and beta). */
hs_bn_grad_plan *hs_bn_grad_plan_create(int n, int c, int hw, float eps);
/* As hs_batchnorm_train_forward_ref: batch statistics, save_mean and save_rstd written, the
 * running statistics (when not NULL) updated with momentum, the variance unbiased. */
int hs_bn_grad_plan_forward(hs_bn_grad_plan *plan, const float *x, const float *gamma,
                            const float *beta, float momentum, float *running_mean,
                            float *running_var, float *save_mean, float *save_rstd, float *y);
/* As hs_batchnorm_train_backward_ref, from the save_mean and save_rstd of the forward.
 * oneDNN wants the variance: it is recovered as 1/rstd^2 - eps (relative error ~1e-7). */
int hs_bn_grad_plan_backward(hs_bn_grad_plan *plan, const float *x, const float *dy,
                             const float *gamma, const float *save_mean,
                             const float *save_rstd, float *dx, float *dgamma, float *dbeta);
int hs_bn_grad_plan_matches(const hs_bn_grad_plan *plan, int n, int c, int hw, float eps);
int hs_bn_grad_plan_uses_dnnl(const hs_bn_grad_plan *plan);
const char *hs_bn_grad_plan_impl(const hs_bn_grad_plan *plan);
void hs_bn_grad_plan_free(hs_bn_grad_plan *plan);

/* BatchNorm with frozen statistics, backward (hs_batchnorm_frozen_backward_ref), threaded
 * over channels: an element-wise scale and two sums, not worth a oneDNN primitive. */
void hs_batchnorm_frozen_backward(const float *x, const float *dy, int n, int c, int hw,
                                  const float *gamma, const float *mean, const float *var,
                                  float eps, float *dx, float *dgamma, float *dbeta);

/* ---- max and average pooling (symmetric padding, as the reference) ---------------------- */
typedef enum hs_pool_kind { HS_POOL_MAX = 0, HS_POOL_AVG } hs_pool_kind;
typedef struct hs_pool_grad_plan hs_pool_grad_plan;

/* Average pooling counts padded zeros (count_include_pad=True), as the reference. */
hs_pool_grad_plan *hs_pool_grad_plan_create(hs_pool_kind kind, int n, int c, int h, int w,
                                            int kernel, int stride, int pad);
/* Forward in training mode: y as hs_maxpool2d_forward_ref / hs_avgpool2d_forward_ref. Max
 * pooling keeps each window's argmax in the plan's workspace for the next backward. */
int hs_pool_grad_plan_forward(hs_pool_grad_plan *plan, const float *x, float *y);
/* dx (overwritten) from dy. Max pooling routes through the workspace of the LAST forward run
 * on this plan, which must have been on x (the reference fallback reads x itself). */
int hs_pool_grad_plan_backward(hs_pool_grad_plan *plan, const float *x, const float *dy,
                               float *dx);
int hs_pool_grad_plan_uses_dnnl(const hs_pool_grad_plan *plan);
const char *hs_pool_grad_plan_impl(const hs_pool_grad_plan *plan);
void hs_pool_grad_plan_free(hs_pool_grad_plan *plan);

/* hs_adaptive_avgpool2d_backward_ref threaded over planes (oneDNN has no adaptive pooling). */
void hs_adaptive_avgpool2d_backward(int n, int c, int h, int w, int out_h, int out_w,
                                    const float *dy, float *dx);

/* ---- ReLU and ReLU6 backward ------------------------------------------------------------ */
typedef enum hs_act_kind { HS_ACT_RELU = 0, HS_ACT_RELU6 } hs_act_kind;
typedef struct hs_act_grad_plan hs_act_grad_plan;

/* For `count` values. ReLU6's gradient passes only strictly inside (0, 6), as hardtanh. */
hs_act_grad_plan *hs_act_grad_plan_create(hs_act_kind kind, int64_t count);
/* x: the activation's forward input. dx overwritten; may alias dy. */
int hs_act_grad_plan_run(hs_act_grad_plan *plan, const float *x, const float *dy, float *dx);
int hs_act_grad_plan_uses_dnnl(const hs_act_grad_plan *plan);
const char *hs_act_grad_plan_impl(const hs_act_grad_plan *plan);
void hs_act_grad_plan_free(hs_act_grad_plan *plan);

#endif
