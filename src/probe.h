/* The linear-probe protocol of the transfer-learning literature: multinomial logistic
 * regression on frozen features, fitted full-batch by L-BFGS, with the L2 strength chosen on
 * a held-out part of the training data and the final fit on all of it. */
#ifndef HS_PROBE_H
#define HS_PROBE_H

#include <stdint.h>

#include "context.h"
#include "headstart.h"

typedef struct hs_probe_result {
    double lambda;            /* the chosen L2 strength */
    double holdout_accuracy;  /* of the chosen strength, in percent */
    int iterations;           /* of the final fit */
} hs_probe_result;

/* x: n x dim features, labels in [0, classes). Writes weight (classes x dim, PyTorch's
 * Linear layout) and bias (classes). */
hs_status hs_probe_fit(const float *x, const int *labels, int n, int dim, int classes,
                       uint64_t seed, float *weight, float *bias, hs_probe_result *result,
                       hs_error *err);

/* The same fit over the ranks of ctx (every rank passes all n rows): each rank evaluates the
 * loss and gradient on its contiguous share of the rows and L-BFGS sees their sums, so every
 * rank runs the same iterations. Equal to hs_probe_fit up to the order of the float sums.
 * class_weights (classes values, or NULL): the objective is the class-weighted mean
 * cross-entropy (loss.h), and the L2 strength is chosen by the weighted held-out accuracy
 * (holdout_accuracy then reports that). */
hs_status hs_probe_fit_dist(const hs_context *ctx, const float *x, const int *labels, int n,
                            int dim, int classes, uint64_t seed, const float *class_weights,
                            float *weight, float *bias, hs_probe_result *result,
                            hs_error *err);

#endif
