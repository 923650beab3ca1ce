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

/* The class-weighted forms, as PyTorch's CrossEntropyLoss(weight=w) computes them:
 *   loss = (1/D) sum_b sum_k w_k t_bk * -log_softmax(z_b)_k
 * with D the caller's denominator. PyTorch divides by D = sum_b w_{y_b} for class-index
 * targets (with or without label smoothing: the smoothing term keeps w_k inside the sum, as
 * PyTorch's does), so the mean is normalised by the weights' sum. For mixup's soft targets
 * the same D (each image's own label) keeps that normalisation: mixup pairs images i and
 * n-1-i of a batch with lam and 1 - lam, so sum_b (lam w_{y_i} + (1 - lam) w_{y_j}) is
 * sum_b w_{y_b}. Without weights (NULL) and D = n these are the functions above.
 * dlogits, when not NULL, receives (softmax_k * sum_c w_c t_bc - w_k t_bk) / D. */
float hs_weighted_soft_cross_entropy(const float *logits, const float *targets, int n,
                                     int classes, const float *class_weights, double denominator,
                                     float *dlogits);
float hs_weighted_smoothed_cross_entropy(const float *logits, const int *labels, int n,
                                         int classes, float eps, const float *class_weights,
                                         double denominator, float *dlogits);

/* sum_b w_{labels[b]} (n without weights): the denominator above. */
double hs_class_weight_sum(const int *labels, int n, const float *class_weights);

#endif
