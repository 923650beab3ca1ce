/* Losses for training with soft targets (mixup, label smoothing). */
#ifndef HS_LOSS_H
#define HS_LOSS_H

/* Mean over n rows of the softmax cross-entropy with soft targets:
 *   loss = -(1/n) sum_b sum_k t_bk * log_softmax(z_b)_k
 * as torch.nn.functional.cross_entropy(logits, targets) with probabilities as targets.
 * When dlogits is not NULL it receives d(loss)/d(logits) = (softmax * sum_k t_bk - t) / n
 * (targets need not sum to 1). Computed in double, returned as float. */
float hs_soft_cross_entropy(const float *logits, const float *targets, int n, int classes,
                            float *dlogits);

/* cross_entropy(logits, labels, label_smoothing=eps): the soft loss above with targets
 * (1 - eps) * onehot + eps / classes, without building them. labels lie in [0, classes). */
float hs_smoothed_cross_entropy(const float *logits, const int *labels, int n, int classes,
                                float eps, float *dlogits);

#endif
