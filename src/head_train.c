#include "head_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ops.h"

static int layer_width(const hs_layer *l, int in) {
    return l->kind == HS_LAYER_LINEAR ? l->out_features : in;
}

hs_status hs_head_trainer_init(hs_head_trainer *t, hs_net *net, int begin, int max_batch,
                               hs_optimizer_kind kind, float lr, float momentum,
                               float weight_decay, hs_error *err) {
    memset(t, 0, sizeof *t);
    t->net = net;
    t->begin = begin;
    t->end = net->count;
    t->max_batch = max_batch;
    int layers = t->end - begin;
    if (begin < net->feature_end || layers < 1 || max_batch < 1)
        return hs_fail(err, HS_ERR_INTERNAL, "invalid trainable range");
    hs_status st = hs_optimizer_init(&t->optimizer, kind, lr, momentum, weight_decay, err);
    if (st) return st;

    t->dims = calloc((size_t)layers + 1, sizeof *t->dims);
    t->acts = calloc((size_t)layers + 1, sizeof *t->acts);
    t->grads = calloc((size_t)layers + 1, sizeof *t->grads);
    t->masks = calloc((size_t)layers, sizeof *t->masks);
    t->dweight = calloc((size_t)layers, sizeof *t->dweight);
    t->dbias = calloc((size_t)layers, sizeof *t->dbias);
    if (!t->dims || !t->acts || !t->grads || !t->masks || !t->dweight || !t->dbias) goto oom;

    int c = 0, h = 0, w = 0;
    if ((st = hs_net_shape(net, 0, begin, 3, net->info->preprocess.input_size,
                           net->info->preprocess.input_size, &c, &h, &w, err)))
        return st;
    t->dims[0] = c * h * w;
    for (int i = 0; i < layers; i++) {
        hs_layer *l = &net->layers[begin + i];
        if (l->kind != HS_LAYER_LINEAR && l->kind != HS_LAYER_RELU &&
            l->kind != HS_LAYER_DROPOUT && l->kind != HS_LAYER_FLATTEN)
            return hs_fail(err, HS_ERR_INTERNAL, "layer %s cannot be trained here", l->name);
        t->dims[i + 1] = layer_width(l, t->dims[i]);
    }
    for (int i = 0; i <= layers; i++) {
        size_t floats = (size_t)max_batch * t->dims[i];
        if (!(t->acts[i] = malloc(floats * sizeof(float)))) goto oom;
        if (!(t->grads[i] = malloc(floats * sizeof(float)))) goto oom;
    }
    for (int i = 0; i < layers; i++) {
        hs_layer *l = &net->layers[begin + i];
        if (l->kind == HS_LAYER_DROPOUT &&
            !(t->masks[i] = malloc((size_t)max_batch * t->dims[i])))
            goto oom;
        if (l->kind != HS_LAYER_LINEAR) continue;
        size_t weights = (size_t)l->out_features * l->in_features;
        if (!(t->dweight[i] = malloc(weights * sizeof(float))) ||
            !(t->dbias[i] = malloc((size_t)l->out_features * sizeof(float))))
            goto oom;
        char key_w[2 * HS_LAYER_NAME_SIZE], key_b[2 * HS_LAYER_NAME_SIZE];
        snprintf(key_w, sizeof key_w, "%s.weight", l->name);
        snprintf(key_b, sizeof key_b, "%s.bias", l->name);
        if ((st = hs_optimizer_add(&t->optimizer, key_w, l->weight, t->dweight[i],
                                   (int64_t)weights, err)) ||
            (st = hs_optimizer_add(&t->optimizer, key_b, l->bias, t->dbias[i],
                                   l->out_features, err)))
            return st;
    }
    return HS_OK;
oom:
    return hs_fail(err, HS_ERR_NOMEM,
                   "out of memory for training with a batch of %d; lower --batch-size",
                   max_batch);
}

void hs_head_trainer_free(hs_head_trainer *t) {
    int layers = t->end - t->begin;
    for (int i = 0; i <= layers && t->acts; i++) {
        free(t->acts[i]);
        if (t->grads) free(t->grads[i]);
    }
    for (int i = 0; i < layers && t->masks; i++) {
        free(t->masks[i]);
        free(t->dweight[i]);
        free(t->dbias[i]);
    }
    free(t->dims);
    free(t->acts);
    free(t->grads);
    free(t->masks);
    free(t->dweight);
    free(t->dbias);
    hs_optimizer_free(&t->optimizer);
    memset(t, 0, sizeof *t);
}

/* Forward through the trainable layers in training mode: dropout draws fresh masks. */
static void forward_train(hs_head_trainer *t, int n) {
    for (int i = 0; i < t->end - t->begin; i++) {
        const hs_layer *l = &t->net->layers[t->begin + i];
        int64_t count = (int64_t)n * t->dims[i];
        const float *x = t->acts[i];
        float *y = t->acts[i + 1];
        switch (l->kind) {
        case HS_LAYER_LINEAR:
            hs_linear_forward(x, n, l->in_features, l->weight, l->bias, l->out_features, y);
            break;
        case HS_LAYER_RELU: hs_relu_forward(x, count, y); break;
        case HS_LAYER_DROPOUT:
            for (int64_t k = 0; k < count; k++)
                t->masks[i][k] = hs_rng_uniform(&t->dropout_rng) >= l->dropout_p;
            hs_dropout_forward_ref(x, t->masks[i], count, l->dropout_p, y);
            break;
        default: memcpy(y, x, (size_t)count * sizeof(float)); break;
        }
    }
}

static void backward(hs_head_trainer *t, int n) {
    for (int i = t->end - t->begin - 1; i >= 0; i--) {
        const hs_layer *l = &t->net->layers[t->begin + i];
        int64_t count = (int64_t)n * t->dims[i];
        const float *dy = t->grads[i + 1];
        float *dx = i > 0 ? t->grads[i] : NULL; /* the features need no gradient */
        switch (l->kind) {
        case HS_LAYER_LINEAR:
            hs_linear_backward(t->acts[i], n, l->in_features, l->weight, l->out_features, dy,
                               dx, t->dweight[i], t->dbias[i]);
            break;
        case HS_LAYER_RELU:
            if (dx) hs_relu_backward_ref(t->acts[i], dy, count, dx);
            break;
        case HS_LAYER_DROPOUT:
            if (dx) hs_dropout_backward_ref(dy, t->masks[i], count, l->dropout_p, dx);
            break;
        default:
            if (dx) memcpy(dx, dy, (size_t)count * sizeof(float));
            break;
        }
    }
}

static int argmax(const float *row, int count) {
    int best = 0;
    for (int i = 1; i < count; i++)
        if (row[i] > row[best]) best = i;
    return best;
}

hs_status hs_head_train_step(hs_head_trainer *t, const float *features, const int *labels,
                             int n, hs_batch_result *result, hs_error *err) {
    if (n < 1 || n > t->max_batch)
        return hs_fail(err, HS_ERR_INTERNAL, "batch of %d for a trainer of %d", n, t->max_batch);
    int layers = t->end - t->begin, classes = t->dims[layers];
    memcpy(t->acts[0], features, (size_t)n * t->dims[0] * sizeof(float));
    forward_train(t, n);
    const float *logits = t->acts[layers];
    float loss = hs_softmax_cross_entropy_ref(logits, n, classes, labels, t->grads[layers]);
    if (!isfinite(loss))
        return hs_fail(err, HS_ERR_DIVERGED,
                       "the loss became %s at this step; lower --lr (now %g)",
                       isnan(loss) ? "NaN" : "infinite", t->optimizer.lr);
    result->loss_sum = (double)loss * n;
    result->correct = 0;
    for (int b = 0; b < n; b++)
        result->correct += argmax(logits + (size_t)b * classes, classes) == labels[b];
    hs_optimizer_zero_grad(&t->optimizer);
    backward(t, n);
    hs_optimizer_step(&t->optimizer);
    t->net->prepared = 0; /* not needed for linear layers, but keeps the contract simple */
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
