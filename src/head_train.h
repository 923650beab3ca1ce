/* Training the trainable end of a network (its head) on feature vectors: the interpreter
 * (net_train.h) on the range [begin, net->count).
 *
 * Everything before begin is frozen and never runs here: its output, the features, comes in
 * precomputed (computed once, see features.h). Dropout is active while training and
 * off in evaluation, as in PyTorch's train() / eval(). */
#ifndef HS_HEAD_TRAIN_H
#define HS_HEAD_TRAIN_H

#include <stdint.h>

#include "context.h"
#include "net.h"
#include "net_train.h"
#include "optim.h"
#include "rng.h"

typedef struct hs_head_trainer {
    hs_net *net;
    int begin, end;        /* trained layer range */
    int max_batch;
    hs_tape tape;          /* the interpreter over [begin, end) */
    hs_optimizer optimizer;
    hs_rng dropout_rng;
    /* --class-weights: num_classes weights (borrowed), or NULL for the plain mean. With
     * weights each step's loss is the weighted mean (loss.h), normalised by the sum of the
     * global batch's weights. */
    const float *class_weights;
} hs_head_trainer;

typedef struct hs_batch_result {
    double loss_sum;   /* sum over the batch of per-sample losses */
    int correct;       /* samples whose argmax is the label */
} hs_batch_result;

hs_status hs_head_trainer_init(hs_head_trainer *t, hs_net *net, int begin, int max_batch,
                               hs_optimizer_kind kind, float lr, float momentum,
                               float weight_decay, hs_error *err);
void hs_head_trainer_free(hs_head_trainer *t);

/* Starts an epoch: writes the order of the n training samples for it into order and seeds
 * the dropout masks. Both depend only on (seed, epoch), so a resumed run, or any loop that
 * feeds the same samples in this order, repeats them exactly. */
void hs_head_trainer_begin_epoch(hs_head_trainer *t, uint64_t seed, int epoch, int n,
                                 int *order);

/* One optimizer step on a batch (n <= max_batch) with the mean cross-entropy loss. Returns
 * HS_ERR_DIVERGED, before any update, when the loss is not finite. */
hs_status hs_head_train_step(hs_head_trainer *t, const float *features, const int *labels,
                             int n, hs_batch_result *result, hs_error *err);

/* The data-parallel step: this rank's n samples (0 allowed) of a global batch of
 * global_n, with the mean loss over the global batch (with class weights: the weighted mean,
 * its denominator summed over the ranks). Each rank's gradients are scaled by
 * n / global_n and summed over ranks (hs_sum_gradients), so every rank takes the step one
 * process would take on the whole batch, up to the order of the float sums. A failure on
 * any rank (a loss that is not finite) fails the step on every rank, before the update.
 * result holds this rank's part. samples (n, or NULL) are the samples' ids, their rows in the
 * epoch's data: dropout draws each sample's mask from its id (hs_tape_forward_samples), so N
 * ranks draw the masks one process draws. With ctx NULL or one rank and samples NULL:
 * hs_head_train_step. */
hs_status hs_head_train_step_dist(hs_head_trainer *t, const hs_context *ctx,
                                  const float *features, const int *labels,
                                  const int *samples, int n, int global_n,
                                  hs_batch_result *result, hs_error *err);

/* Sums the gradients of every parameter opt holds over the ranks of ctx: one span of the
 * gradient arena (the trained layers are contiguous in it) in buckets of HS_DIST_BUCKET_FLOATS
 * (dist.h). A no-op for one rank. */
hs_status hs_sum_gradients(const hs_context *ctx, const hs_optimizer *opt, hs_error *err);

/* Fails (HS_ERR_INTERNAL, naming the epoch) unless every rank's copy of the parameters opt
 * holds is bit-identical: the all-reduce must hand every rank the same sums, so a difference
 * means the ranks no longer train one model. A hash of the values is compared, once an
 * epoch. */
hs_status hs_check_ranks_agree(const hs_context *ctx, const hs_optimizer *opt, int epoch,
                               hs_error *err);

/* Inference-mode loss and accuracy of the head over n samples (in batches); when confusion
 * is not NULL (classes x classes, row = true class) it is incremented, and predictions (n)
 * receives each argmax when not NULL. */
hs_status hs_head_evaluate(hs_net *net, int begin, const float *features, const int *labels,
                           int n, int batch, hs_batch_result *result, int *confusion,
                           int *predictions, hs_error *err);

#endif
