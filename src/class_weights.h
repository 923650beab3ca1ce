/* Class weights for imbalanced data (--class-weights): one weight per class that scales each
 * sample's cross-entropy by its target class (loss.h: the weighted forms, as PyTorch's
 * CrossEntropyLoss(weight=...)). */
#ifndef HS_CLASS_WEIGHTS_H
#define HS_CLASS_WEIGHTS_H

#include "headstart.h"

/* The largest weight a file may give: enough for any imbalance, and far from float's range
 * so that a batch's weighted sums stay finite. */
#define HS_CLASS_WEIGHT_MAX 1e6

/* Whether spec names one of the built-in modes ("none", "balanced") or, otherwise, a file. */
int hs_class_weights_is_mode(const char *spec);

/* The weights spec asks for, for classes class_names[0..classes) given each training
 * sample's label (labels[0..n)):
 *   "none"     -> *out = NULL (every weight 1);
 *   "balanced" -> n / (classes x count_c), scikit-learn's compute_class_weight("balanced");
 *                 a class without training images is an HS_ERR_ARGUMENT naming it;
 *   a FILE     -> one "class,weight" per line (the class name is everything before the last
 *                 comma; blank lines and lines starting with '#' are skipped); every class
 *                 named exactly once, no unknown class, each weight a finite number in
 *                 (0, HS_CLASS_WEIGHT_MAX]: anything else an HS_ERR_ARGUMENT naming the line.
 * *out (classes floats) is malloc'd; the caller frees it. */
hs_status hs_class_weights_resolve(const char *spec, char *const *class_names, int classes,
                                   const int *labels, int n, float **out, hs_error *err);

#endif
