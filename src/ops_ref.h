/* Reference kernels: plain loops over float32 NCHW arrays.
 *
 * These are the definition of every operation headstart computes and the oracle every faster
 * path is tested against. They favour obviousness over speed. Output sizes follow PyTorch:
 * out = floor((in + pad_before + pad_after - dilation*(k-1) - 1) / stride) + 1. */
#ifndef HS_OPS_REF_H
#define HS_OPS_REF_H

#include <stdint.h>

typedef struct hs_conv2d_shape {
    int in_channels, out_channels;
    int kernel_h, kernel_w;
    int stride_h, stride_w;
    int pad_top, pad_bottom, pad_left, pad_right; /* zero padding; may be asymmetric */
    int dilation_h, dilation_w;
    int groups; /* in_channels and out_channels divisible by groups; depthwise: groups=in */
} hs_conv2d_shape;

/* Output spatial size of a convolution or pooling window along one axis. */
int hs_conv_out_size(int in, int kernel, int stride, int pad_before, int pad_after,
                     int dilation);

/* TensorFlow "SAME" padding along one axis: out = ceil(in / stride); the total padding is
 * split with the extra pixel after (bottom/right), as TF and the Lite checkpoints expect. */
void hs_same_padding(int in, int kernel, int stride, int dilation, int *pad_before,
                     int *pad_after);

/* x: n x in_c x h x w; weight: out_c x (in_c/groups) x kh x kw; bias: out_c or NULL;
 * y: n x out_c x oh x ow (sizes from hs_conv_out_size). */
void hs_conv2d_forward_ref(const float *x, int n, int h, int w, const float *weight,
                           const float *bias, const hs_conv2d_shape *s, float *y);

/* Folds inference-mode BatchNorm after a convolution into its weight and bias:
 * w' = w * gamma / sqrt(var + eps), b' = (b - mean) * gamma / sqrt(var + eps) + beta.
 * weight has out_c rows of per_out values; bias (out_c) must exist (zeros if the conv had
 * none). */
void hs_fold_batchnorm(float *weight, float *bias, int out_channels, int per_out,
                       const float *gamma, const float *beta, const float *mean,
                       const float *var, float eps);

/* Inference-mode BatchNorm on n x c x hw (used to check folding). */
void hs_batchnorm_forward_ref(const float *x, int n, int c, int hw, const float *gamma,
                              const float *beta, const float *mean, const float *var,
                              float eps, float *y);

void hs_relu_forward_ref(const float *x, int64_t count, float *y);
void hs_relu6_forward_ref(const float *x, int64_t count, float *y);
/* dx = dy where x > 0, else 0 (x is the ReLU's input). */
void hs_relu_backward_ref(const float *x, const float *dy, int64_t count, float *dx);

/* Max / average pooling with a k x k window; padding is symmetric (pad on every side).
 * Average pooling counts padded zeros like PyTorch's default count_include_pad=True. */
void hs_maxpool2d_forward_ref(const float *x, int n, int c, int h, int w, int kernel,
                              int stride, int pad, float *y);
void hs_avgpool2d_forward_ref(const float *x, int n, int c, int h, int w, int kernel,
                              int stride, int pad, float *y);

/* PyTorch's AdaptiveAvgPool2d: bin i covers [floor(i*in/out), ceil((i+1)*in/out)). Works
 * for out larger than in (bins then repeat input pixels). */
void hs_adaptive_avgpool2d_forward_ref(const float *x, int n, int c, int h, int w, int out_h,
                                       int out_w, float *y);

/* y = x W^T + b. x: n x in; weight: out x in (PyTorch's layout); bias: out or NULL. */
void hs_linear_forward_ref(const float *x, int n, int in, const float *weight,
                           const float *bias, int out, float *y);
/* Given dy (n x out): dx = dy W (n x in, skipped when dx is NULL); dweight += dy^T x;
 * dbias += sum over n of dy (skipped when NULL). Gradients accumulate. */
void hs_linear_backward_ref(const float *x, int n, int in, const float *weight, int out,
                            const float *dy, float *dx, float *dweight, float *dbias);

/* Dropout with a given keep mask (1 keep, 0 drop) and probability p: y = x * mask / (1-p).
 * The mask comes from the caller so tests can match PyTorch exactly. */
void hs_dropout_forward_ref(const float *x, const uint8_t *mask, int64_t count, float p,
                            float *y);
void hs_dropout_backward_ref(const float *dy, const uint8_t *mask, int64_t count, float p,
                             float *dx);

/* Row-wise softmax of n x classes, numerically stable. */
void hs_softmax_forward_ref(const float *x, int n, int classes, float *y);

/* Mean softmax cross-entropy over n rows with integer labels; returns the loss and, when
 * dlogits is not NULL, writes d(loss)/d(logits) = (softmax - onehot) / n. */
float hs_softmax_cross_entropy_ref(const float *logits, int n, int classes, const int *labels,
                                   float *dlogits);

/* ---- Backward (training) kernels: ops_ref_grad.c ----------------------------------------
 * Contract everywhere: dx is overwritten (skipped when NULL); parameter gradients (dweight,
 * dbias, dgamma, dbeta) ACCUMULATE (+=) and are skipped when NULL. As in the forward
 * kernels, every sum is accumulated in double and rounded to float once. */

/* conv2d (any kernel, stride, dilation, groups incl. depthwise, asymmetric padding).
 * x: n x in_c x h x w (the forward input); dy: n x out_c x oh x ow. */
void hs_conv2d_backward_ref(const float *x, int n, int h, int w, const float *weight,
                            const hs_conv2d_shape *s, const float *dy, float *dx,
                            float *dweight, float *dbias);

/* BatchNorm2d in training mode over n x c x hw: normalises with the batch mean and the biased
 * variance; writes save_mean and save_rstd (c each, rstd = 1/sqrt(var_biased + eps)); when
 * running_mean and running_var are not NULL updates them as PyTorch does:
 * running = (1 - momentum) * running + momentum * batch, the variance unbiased
 * (times m / (m - 1), m = n * hw; PyTorch refuses m = 1, here the biased variance is used). */
void hs_batchnorm_train_forward_ref(const float *x, int n, int c, int hw, const float *gamma,
                                    const float *beta, float eps, float momentum,
                                    float *running_mean, float *running_var,
                                    float *save_mean, float *save_rstd, float *y);
/* With xhat = (x - mean) * rstd, m = n * hw, per channel:
 * dx = gamma * rstd / m * (m * dy - sum dy - xhat * sum(dy * xhat));
 * dgamma += sum dy * xhat; dbeta += sum dy. */
void hs_batchnorm_train_backward_ref(const float *x, const float *dy, int n, int c, int hw,
                                     const float *gamma, const float *save_mean,
                                     const float *save_rstd, float *dx, float *dgamma,
                                     float *dbeta);
/* BatchNorm with frozen statistics (inference mode, hs_batchnorm_forward_ref) backward:
 * dx = dy * gamma / sqrt(var + eps); dgamma += sum dy * (x - mean) / sqrt(var + eps);
 * dbeta += sum dy. */
void hs_batchnorm_frozen_backward_ref(const float *x, const float *dy, int n, int c, int hw,
                                      const float *gamma, const float *mean,
                                      const float *var, float eps, float *dx, float *dgamma,
                                      float *dbeta);

/* ReLU6 = hardtanh(0, 6): dx = dy where 0 < x < 6, else 0 (x is the forward input). The
 * existing hs_relu_backward_ref covers ReLU. */
void hs_relu6_backward_ref(const float *x, const float *dy, int64_t count, float *dx);

/* Pooling backward; dx (n x c x h x w) overwritten. Max pooling sends each window's gradient
 * to the first maximum in scan order, as PyTorch's CPU kernel (a NaN wins, the last one). */
void hs_maxpool2d_backward_ref(const float *x, int n, int c, int h, int w, int kernel,
                               int stride, int pad, const float *dy, float *dx);
void hs_avgpool2d_backward_ref(int n, int c, int h, int w, int kernel, int stride, int pad,
                               const float *dy, float *dx);
void hs_adaptive_avgpool2d_backward_ref(int n, int c, int h, int w, int out_h, int out_w,
                                        const float *dy, float *dx);

/* EfficientNet-Lite's drop connect (efficientnet_lite_pytorch `drop_connect`): per sample b,
 * y = x * keep[b] / (1 - p), keep[b] in {0, 1}; applied to a block's output before its
 * residual add, in training only. p = 1 gives zeros (as hs_dropout_forward_ref). */
void hs_drop_connect_forward_ref(const float *x, const uint8_t *keep, int n,
                                 int64_t per_sample, float p, float *y);
void hs_drop_connect_backward_ref(const float *dy, const uint8_t *keep, int n,
                                  int64_t per_sample, float p, float *dx);

#endif
