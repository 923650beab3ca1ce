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
 * Layouts. Activations and their gradients are float32 in the layout the plan was made for
 * (hs_layout: NCHW, or oneDNN's blocked nChw16c / nChw8c, whose padding channels the plans
 * keep zero); weights and parameter gradients are always plain (OIHW, one value a channel).
 * The training tape (net_train.c) keeps activations in hs_layout_blocked() from the first
 * convolution to the global pooling, so the convolutions read and write the layout their
 * kernels want and no activation is reordered inside the net. A plan still reorders where a
 * primitive wants another layout than the caller's (the weights always; activations only when
 * the caller's layout is not the kernel's).
 *
 * Fallback. When oneDNN cannot make a primitive for an NCHW plan, the plan runs the reference
 * kernel instead (single-threaded, slow but right); *_uses_dnnl says which, *_impl names the
 * kernels for benchmarks and logs. A blocked plan has no reference kernel: its create returns
 * NULL when oneDNN cannot make it (hs_grad_plans_layout() says NCHW whenever oneDNN is off, so
 * the tape then never asks for one). A run returns 0, or -1 if oneDNN failed while executing
 * (outputs are then undefined). */
#ifndef HS_OPS_GRAD_H
#define HS_OPS_GRAD_H

#include <stdint.h>

#include "ops.h"
#include "ops_ref.h"

/* Whether plans created from now on may use oneDNN (default 1). 0 makes every new plan take
 * its fallback, so tests can check those paths on a machine where oneDNN works. */
void hs_grad_plans_use_dnnl(int on);
/* The activation layout training plans work in here: hs_layout_blocked() (the inference
 * plan's choice, from the ISA oneDNN runs) when oneDNN is usable and allowed, else NCHW. */
hs_layout hs_grad_plans_layout(void);
/* Index of value (b, ch, i) of an n x c x hw activation in a layout (block 1: NCHW). */
static inline int64_t hs_layout_index(int block, int c, int hw, int b, int ch, int64_t i) {
    const int cb = (c + block - 1) / block;
    return (((int64_t)b * cb + ch / block) * hw + i) * block + ch % block;
}

/* ---- convolution: backward data, backward weights and bias ------------------------------ */
typedef struct hs_conv_grad_plan hs_conv_grad_plan;

/* A plan for one convolution in training (any kernel, stride, dilation, groups, asymmetric
 * padding) on an n x in_c x h x w input: forward, backward data, backward weights and bias.
 * x and dx are in src_layout, y and dy in dst_layout. NULL when out of memory, or for a
 * blocked layout oneDNN cannot make. */
hs_conv_grad_plan *hs_conv_grad_plan_create(const hs_conv2d_shape *s, int n, int h, int w,
                                            hs_layout src_layout, hs_layout dst_layout);
/* The same with bf16 != 0: bfloat16 convolutions (mixed-precision training). The caller's
 * arrays stay float32 at the plan's edges: x, dy and the weights are converted into bf16
 * buffers (x and dy into two slots shared by every bf16 plan of the process, which is why
 * plans are made, run and freed by one thread at a time; the weights into the plan's own),
 * with the reorder into the kernel's layout the plan runs anyway;
 * products are taken in bf16 and summed in float32, y, dx, dweight and dbias are written in
 * float32; the weights are read (and converted) on every run, so the caller's float32 master
 * weights are what the optimiser updates. Depthwise convolutions stay float32: in bf16
 * too they took 1.3-1.5x less CPU time a Lite0 step on a loaded machine, but doubled the
 * step's loss error (1.2e-2 against 5.4e-3 on tests/test_engine_fast.c's step), so that
 * waits for the accuracy measurement it needs.
 * Where oneDNN has no bf16 kernels (below AVX-512) the plan is float32, as
 * hs_conv_grad_plan_bf16 reports. bf16 = 0 is hs_conv_grad_plan_create. */
hs_conv_grad_plan *hs_conv_grad_plan_create_prec(const hs_conv2d_shape *s, int n, int h, int w,
                                                 hs_layout src_layout, hs_layout dst_layout,
                                                 int bf16);
/* 1 when the plan's convolutions run in bfloat16. */
int hs_conv_grad_plan_bf16(const hs_conv_grad_plan *plan);
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
                              int h, int w, hs_layout src_layout, hs_layout dst_layout);
int hs_conv_grad_plan_uses_dnnl(const hs_conv_grad_plan *plan);
/* "<forward kernel> / <backward data kernel> / <backward weights kernel>". */
const char *hs_conv_grad_plan_impl(const hs_conv_grad_plan *plan);
void hs_conv_grad_plan_free(hs_conv_grad_plan *plan);

/* ---- BatchNorm in training mode (forward and backward) ---------------------------------- */
typedef struct hs_bn_grad_plan hs_bn_grad_plan;

/* For n x c x hw activations in a layout and epsilon eps (scale and shift always on: gamma
 * and beta). */
hs_bn_grad_plan *hs_bn_grad_plan_create(int n, int c, int hw, float eps, hs_layout layout);
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
int hs_bn_grad_plan_matches(const hs_bn_grad_plan *plan, int n, int c, int hw, float eps,
                            hs_layout layout);
int hs_bn_grad_plan_uses_dnnl(const hs_bn_grad_plan *plan);
const char *hs_bn_grad_plan_impl(const hs_bn_grad_plan *plan);
void hs_bn_grad_plan_free(hs_bn_grad_plan *plan);

/* BatchNorm with frozen statistics, forward (hs_batchnorm_forward_ref) and backward
 * (hs_batchnorm_frozen_backward_ref) in a layout, threaded over channels: an element-wise
 * scale and two sums, not worth a oneDNN primitive. Padding channels of y and dx are
 * written zero. */
void hs_batchnorm_frozen_forward(const float *x, hs_layout layout, int n, int c, int hw,
                                 const float *gamma, const float *beta, const float *mean,
                                 const float *var, float eps, float *y);
void hs_batchnorm_frozen_backward(const float *x, const float *dy, hs_layout layout, int n,
                                  int c, int hw, const float *gamma, const float *mean,
                                  const float *var, float eps, float *dx, float *dgamma,
                                  float *dbeta);

/* ---- BatchNorm followed by ReLU or ReLU6, fused (blocked layouts) -------------------------
 * y = min(max(BN(x), 0), upper) in one pass over the data after the statistics (upper: 6 for
 * ReLU6, INFINITY for ReLU), and its backward with the activation's mask recomputed from x,
 * so the BatchNorm's own output is never stored nor read. The tape (net_train.c) uses it for
 * a BatchNorm whose only reader is a ReLU / ReLU6, the pattern of every MBConv and ResNet
 * stage: two of the five memory passes a pair costs in each direction disappear.
 *
 * batch_stats: normalise with the batch's mean and biased variance (shifted sums in float a
 * row, double in total: 1e-6 relative to the two-pass reference on trained activations),
 * update the running statistics (when not NULL) as PyTorch does; otherwise normalise with
 * the running ones. Either way save_mean / save_rstd receive the statistics used, which the
 * backward reads. Padding channels of y and dx are written zero. */
void hs_bn_act_forward(const float *x, hs_layout layout, int n, int c, int hw,
                       const float *gamma, const float *beta, float eps, float momentum,
                       int batch_stats, float *running_mean, float *running_var,
                       float *save_mean, float *save_rstd, float upper, float *y);
/* dx (overwritten, skipped when NULL); dgamma, dbeta accumulate (skipped when NULL). */
void hs_bn_act_backward(const float *x, const float *dy, hs_layout layout, int n, int c, int hw,
                        const float *gamma, const float *beta, const float *save_mean,
                        const float *save_rstd, int batch_stats, float upper, float *dx,
                        float *dgamma, float *dbeta);

/* ---- max and average pooling (symmetric padding, as the reference) ---------------------- */
typedef enum hs_pool_kind { HS_POOL_MAX = 0, HS_POOL_AVG } hs_pool_kind;
typedef struct hs_pool_grad_plan hs_pool_grad_plan;

/* Average pooling counts padded zeros (count_include_pad=True), as the reference. x, y and
 * their gradients in `layout`. */
hs_pool_grad_plan *hs_pool_grad_plan_create(hs_pool_kind kind, int n, int c, int h, int w,
                                            int kernel, int stride, int pad, hs_layout layout);
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
/* Global average pooling out of a layout: x (n x c x hw in `layout`) to y (n x c, plain),
 * the net's exit from the blocked layout; and its backward, dy (n x c) to dx (in `layout`,
 * padding channels zero). Threaded; sums in double as the reference. */
void hs_global_avgpool_forward(const float *x, hs_layout layout, int n, int c, int hw,
                               float *y);
void hs_global_avgpool_backward(const float *dy, hs_layout layout, int n, int c, int hw,
                                float *dx);

/* ---- ReLU and ReLU6 backward ------------------------------------------------------------ */
typedef enum hs_act_kind { HS_ACT_RELU = 0, HS_ACT_RELU6 } hs_act_kind;
typedef struct hs_act_grad_plan hs_act_grad_plan;

/* For `count` values (any layout: all of an activation's floats, padding included, which
 * stays zero). ReLU6's gradient passes only strictly inside (0, 6), as hardtanh. */
hs_act_grad_plan *hs_act_grad_plan_create(hs_act_kind kind, int64_t count);
/* x: the activation's forward input. dx overwritten; may alias dy. */
int hs_act_grad_plan_run(hs_act_grad_plan *plan, const float *x, const float *dy, float *dx);
int hs_act_grad_plan_uses_dnnl(const hs_act_grad_plan *plan);
const char *hs_act_grad_plan_impl(const hs_act_grad_plan *plan);
void hs_act_grad_plan_free(hs_act_grad_plan *plan);

#endif
