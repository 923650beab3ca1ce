#include "head_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "error.h"
#include "loss.h"
#include "ops.h"

hs_status hs_head_trainer_init(hs_head_trainer *t, hs_net *net, int begin, int max_batch,
                               hs_optimizer_kind kind, float lr, float momentum,
                               float weight_decay, hs_error *err) {
    memset(t, 0, sizeof *t);
    t->net = net;
    t->begin = begin;
    t->end = net->count;
    t->max_batch = max_batch;
    if (begin < net->feature_end || t->end - begin < 1 || max_batch < 1)
        return hs_fail(err, HS_ERR_INTERNAL, "invalid trainable range");
    hs_status st = hs_optimizer_init(&t->optimizer, kind, lr, momentum, weight_decay, err);
    if (st) return st;
    int c = 0, h = 0, w = 0;
    if ((st = hs_net_shape(net, 0, begin, 3, net->info->preprocess.input_size,
                           net->info->preprocess.input_size, &c, &h, &w, err)) ||
        (st = hs_tape_init(&t->tape, net, begin, t->end, max_batch, c, h, w, 0, err)))
        return st;
    /* Every trainable tensor of the range, in state-dict order. */
    hs_param_ref *refs = NULL;
    int count = 0;
    if ((st = hs_net_params(net, &refs, &count, err))) return st;
    for (int i = 0; i < count && !st; i++) {
        if (refs[i].buffer || refs[i].layer < begin || net->layers[refs[i].layer].frozen)
            continue;
        st = hs_optimizer_add(&t->optimizer, refs[i].key, *refs[i].data, *refs[i].grad,
                              hs_param_numel(&refs[i]), err);
    }
    free(refs);
    return st;
}

void hs_head_trainer_free(hs_head_trainer *t) {
    hs_tape_free(&t->tape);
    hs_optimizer_free(&t->optimizer);
    memset(t, 0, sizeof *t);
}

static int argmax(const float *row, int count) {
    int best = 0;
    for (int i = 1; i < count; i++)
        if (row[i] > row[best]) best = i;
    return best;
}

hs_status hs_head_train_step(hs_head_trainer *t, const float *features, const int *labels,
                             int n, hs_batch_result *result, hs_error *err) {
    if (n < 1) return hs_fail(err, HS_ERR_INTERNAL, "batch of %d", n);
    return hs_head_train_step_dist(t, NULL, features, labels, NULL, n, n, result, err);
}

/* Forward, loss and backward of this rank's part of the batch, its gradient already scaled
 * to its share of the global mean: the loss of the n samples is normalised by `denominator`,
 * the global batch's (weighted) count, so the ranks' gradients sum to the global mean's. */
static hs_status local_pass(hs_head_trainer *t, const float *features, const int *labels,
                            const int *samples, int n, int global_n, double denominator,
                            hs_batch_result *result,
                            hs_error *err) {
    int classes = t->tape.shapes[t->end - t->begin].c;
    hs_status st = samples ? hs_tape_forward_samples(&t->tape, features, n, 1, &t->dropout_rng,
                                                     samples, err)
                           : hs_tape_forward(&t->tape, features, n, 1, &t->dropout_rng, err);
    if (st) return st;
    const float *logits = hs_tape_output(&t->tape);
    float *dlogits = hs_tape_output_grad(&t->tape);
    float loss;
    if (t->class_weights) {
        /* This rank's part of the global batch's weighted mean. */
        loss = hs_weighted_smoothed_cross_entropy(logits, labels, n, classes, 0.0f,
                                                  t->class_weights, denominator, dlogits);
    } else {
        loss = hs_softmax_cross_entropy_ref(logits, n, classes, labels, dlogits);
    }
    if (!isfinite(loss))
        return hs_fail(err, HS_ERR_DIVERGED,
                       "the loss became %s at this step; lower --lr (now %g)",
                       isnan(loss) ? "NaN" : "infinite", t->optimizer.lr);
    /* The metric sums each batch's (weighted) mean loss times its size; with weights the
     * ranks' parts of that mean add up to it. */
    result->loss_sum = (double)loss * (t->class_weights ? global_n : n);
    for (int b = 0; b < n; b++)
        result->correct += argmax(logits + (size_t)b * classes, classes) == labels[b];
    if (!t->class_weights && n != denominator) {
        /* d(mean over n)/d(logits) -> d(mean over global_n)/d(logits) */
        float share = (float)n / (float)denominator;
        for (size_t i = 0; i < (size_t)n * classes; i++) dlogits[i] *= share;
    }
    return hs_tape_backward(&t->tape, err);
}

hs_status hs_head_train_step_dist(hs_head_trainer *t, const hs_context *ctx,
                                  const float *features, const int *labels,
                                  const int *samples, int n, int global_n,
                                  hs_batch_result *result, hs_error *err) {
    if (n < 0 || n > t->max_batch || n > global_n || global_n < 1)
        return hs_fail(err, HS_ERR_INTERNAL, "batch of %d of %d for a trainer of %d", n,
                       global_n, t->max_batch);
    result->loss_sum = 0;
    result->correct = 0;
    hs_optimizer_zero_grad(&t->optimizer);
    /* The weighted mean's denominator is the whole global batch's weight sum. */
    double denominator = global_n;
    hs_status st = HS_OK;
    if (t->class_weights) {
        denominator = hs_class_weight_sum(labels, n, t->class_weights);
        if ((st = hs_dist_sum_doubles(ctx, &denominator, 1, err))) return st;
    }
    st = n > 0 ? local_pass(t, features, labels, samples, n, global_n, denominator, result,
                                err) : HS_OK;
    /* Every rank learns of a failure here before the all-reduce, so none waits in it. */
    if ((st = hs_dist_agree(ctx, st, err))) return st;
    if ((st = hs_sum_gradients(ctx, &t->optimizer, err))) return st;
    hs_optimizer_step(&t->optimizer);
    t->net->prepared = 0; /* the weights changed: the inference plan refolds */
    return HS_OK;
}

hs_status hs_sum_gradients(const hs_context *ctx, const hs_optimizer *opt, hs_error *err) {
    if (hs_dist_world(ctx) <= 1 || opt->count == 0) return HS_OK;
    float *lo = opt->params[0].grad, *hi = lo + opt->params[0].count;
    int64_t total = 0;
    for (int i = 0; i < opt->count; i++) {
        const hs_opt_param *p = &opt->params[i];
        if (p->grad < lo) lo = p->grad;
        if (p->grad + p->count > hi) hi = p->grad + p->count;
        total += p->count;
    }
    /* One span when the gradients tile it exactly (the trained layers of an hs_net lie
     * together in its arena); else each tensor on its own, so that nothing outside them is
     * summed (a frozen tensor's stale gradient would grow world-fold each step). */
    if (hi - lo == total) return hs_dist_sum_floats(ctx, lo, (size_t)(hi - lo), err);
    for (int i = 0; i < opt->count; i++) {
        hs_status st = hs_dist_sum_floats(ctx, opt->params[i].grad,
                                          (size_t)opt->params[i].count, err);
        if (st) return st;
    }
    return HS_OK;
}

hs_status hs_head_evaluate(hs_net *net, int begin, const float *features, const int *labels,
                           int n, int batch, hs_batch_result *result, int *confusion,
                           int *predictions, hs_error *err) {
    int classes = net->num_classes, c = 0, h = 0, w = 0;
    hs_status st = hs_net_shape(net, 0, begin, 3, net->info->preprocess.input_size,
                                net->info->preprocess.input_size, &c, &h, &w, err);
    if (st) return st;
    int dim = c * h * w;
    float *logits = malloc((size_t)batch * classes * sizeof(float));
    if (!logits) return hs_fail(err, HS_ERR_NOMEM, "out of memory evaluating");
    result->loss_sum = 0;
    result->correct = 0;
    for (int start = 0; start < n && !st; start += batch) {
        int m = n - start < batch ? n - start : batch;
        st = hs_net_run(net, begin, net->count, features + (size_t)start * dim, m, c, h, w,
                        logits, err);
        if (st) break;
        float loss = hs_softmax_cross_entropy_ref(logits, m, classes, labels + start, NULL);
        result->loss_sum += (double)loss * m;
        for (int b = 0; b < m; b++) {
            int guess = argmax(logits + (size_t)b * classes, classes);
            int truth = labels[start + b];
            result->correct += guess == truth;
            if (confusion) confusion[truth * classes + guess]++;
            if (predictions) predictions[start + b] = guess;
        }
    }
    free(logits);
    return st;
}

void hs_head_trainer_begin_epoch(hs_head_trainer *t, uint64_t seed, int epoch, int n,
                                 int *order) {
    enum { SHUFFLE_STREAM = 1, DROPOUT_STREAM = 2 };
    hs_rng shuffle;
    hs_rng_seed_stream(&shuffle, seed, SHUFFLE_STREAM, (uint64_t)epoch);
    hs_rng_seed_stream(&t->dropout_rng, seed, DROPOUT_STREAM, (uint64_t)epoch);
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int j = (int)hs_rng_below(&shuffle, (uint64_t)i + 1);
        int swap = order[i];
        order[i] = order[j];
        order[j] = swap;
    }
}

hs_status hs_check_ranks_agree(const hs_context *ctx, const hs_optimizer *opt, int epoch,
                               hs_error *err) {
    if (hs_dist_world(ctx) <= 1) return HS_OK;
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the bytes of every value */
    for (int i = 0; i < opt->count; i++) {
        const unsigned char *p = (const unsigned char *)opt->params[i].value;
        for (size_t k = 0; k < (size_t)opt->params[i].count * sizeof(float); k++)
            h = (h ^ p[k]) * 1099511628211ull;
    }
    int same = 1;
    hs_status st = hs_dist_same(ctx, h, &same, err);
    if (!st && !same)
        st = hs_fail(err, HS_ERR_INTERNAL, "after epoch %d the ranks' copies of the model "
                     "differ: the MPI all-reduce did not give every rank the same sums", epoch);
    return st;
}
