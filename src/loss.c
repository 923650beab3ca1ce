#include "loss.h"

#include <math.h>
#include <stddef.h>

/* log(sum_k exp(z_k)) of one row, stable: max + log(sum exp(z - max)). */
static double log_sum_exp(const float *row, int classes) {
    float max = row[0];
    for (int k = 1; k < classes; k++)
        if (row[k] > max) max = row[k];
    double sum = 0.0;
    for (int k = 0; k < classes; k++) sum += exp((double)row[k] - max);
    return (double)max + log(sum);
}

/* One row's loss and gradient; target(k) is read through either a dense row or a
 * (label, eps) pair so both entry points share the arithmetic. */
typedef struct row_target {
    const float *dense; /* classes values, or NULL */
    int label;
    double on, off;     /* when dense is NULL: t_k = on for k == label, else off */
} row_target;

static double target_at(const row_target *t, int k) {
    if (t->dense) return (double)t->dense[k];
    return k == t->label ? t->on : t->off;
}

/* One row's weighted loss (w NULL: all weights 1) and its gradient times inv_d. */
static double row_loss(const float *row, int classes, const row_target *t, const float *w,
                       double inv_d, float *grad) {
    const double lse = log_sum_exp(row, classes);
    double loss = 0.0, mass = 0.0;
    for (int k = 0; k < classes; k++) {
        double wt = target_at(t, k) * (w ? (double)w[k] : 1.0);
        loss -= wt * ((double)row[k] - lse);
        mass += wt;
    }
    if (grad)
        for (int k = 0; k < classes; k++) {
            double wt = target_at(t, k) * (w ? (double)w[k] : 1.0);
            grad[k] = (float)((exp((double)row[k] - lse) * mass - wt) * inv_d);
        }
    return loss;
}

float hs_weighted_soft_cross_entropy(const float *logits, const float *targets, int n,
                                     int classes, const float *class_weights, double denominator,
                                     float *dlogits) {
    if (n <= 0 || classes <= 0 || !(denominator > 0)) return 0.0f;
    double total = 0.0;
    for (int b = 0; b < n; b++) {
        row_target t = {targets + (size_t)b * classes, 0, 0, 0};
        total += row_loss(logits + (size_t)b * classes, classes, &t, class_weights,
                          1.0 / denominator, dlogits ? dlogits + (size_t)b * classes : NULL);
    }
    return (float)(total / denominator);
}

float hs_weighted_smoothed_cross_entropy(const float *logits, const int *labels, int n,
                                         int classes, float eps, const float *class_weights,
                                         double denominator, float *dlogits) {
    if (n <= 0 || classes <= 0 || !(denominator > 0)) return 0.0f;
    const double off = (double)eps / classes, on = 1.0 - (double)eps + off;
    double total = 0.0;
    for (int b = 0; b < n; b++) {
        row_target t = {NULL, labels[b], on, off};
        total += row_loss(logits + (size_t)b * classes, classes, &t, class_weights,
                          1.0 / denominator, dlogits ? dlogits + (size_t)b * classes : NULL);
    }
    return (float)(total / denominator);
}

double hs_class_weight_sum(const int *labels, int n, const float *class_weights) {
    if (!class_weights) return n;
    double sum = 0.0;
    for (int b = 0; b < n; b++) sum += class_weights[labels[b]];
    return sum;
}

float hs_soft_cross_entropy(const float *logits, const float *targets, int n, int classes,
                            float *dlogits) {
    return hs_weighted_soft_cross_entropy(logits, targets, n, classes, NULL, n, dlogits);
}

float hs_smoothed_cross_entropy(const float *logits, const int *labels, int n, int classes,
                                float eps, float *dlogits) {
    return hs_weighted_smoothed_cross_entropy(logits, labels, n, classes, eps, NULL, n, dlogits);
}
