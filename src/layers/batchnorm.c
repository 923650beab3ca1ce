/* BatchNorm2d as its own layer. Keys: weight, bias (trainable), running_mean, running_var
 * (buffers). In a training pass with HS_BN_TRAIN it normalises with the batch statistics,
 * saves mean and 1/std for backward and updates the running statistics with its momentum;
 * otherwise (inference, or HS_BN_FROZEN) it uses the running statistics. The inference plan
 * folds it into the convolution before it (net_run.c). */
#include <math.h>

#include "layer.h"

static hs_status bn_shape(const hs_layer *l, hs_act_shape in, hs_act_shape *out,
                          hs_error *err) {
    if (in.c != l->channels)
        return hs_fail(err, HS_ERR_ARGUMENT, "%s expects %d channels, got %d", l->name,
                       l->channels, in.c);
    *out = in;
    return HS_OK;
}

static int bn_params(hs_layer *l, hs_param_sink *sink) {
    int64_t c[1] = {l->channels};
    return sink->add(sink, "weight", &l->weight, &l->dweight, 1, c, 0) &&
           sink->add(sink, "bias", &l->bias, &l->dbias, 1, c, 0) &&
           sink->add(sink, "running_mean", &l->running_mean, NULL, 1, c, 1) &&
           sink->add(sink, "running_var", &l->running_var, NULL, 1, c, 1);
}

static void bn_init(hs_layer *l, hs_rng *rng) {
    (void)rng; /* the identity: nothing drawn */
    for (int i = 0; i < l->channels; i++) {
        l->weight[i] = 1.0f;
        l->bias[i] = 0.0f;
        l->running_mean[i] = 0.0f;
        l->running_var[i] = 1.0f;
    }
    l->bn_batches_tracked = 0;
}

static int uses_batch_stats(const hs_layer *l, int training) {
    return training && l->bn_mode == HS_BN_TRAIN;
}

static void bn_tape(const hs_layer *l, hs_act_shape in, hs_act_shape out, int n,
                    int64_t *floats, int64_t *bytes) {
    *floats = 2 * (int64_t)l->channels; /* save_mean, save_rstd */
    *bytes = 0;
}

static hs_status bn_forward(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    int hw = a->in.h * a->in.w;
    if (uses_batch_stats(l, a->training)) {
        if ((int64_t)a->n * hw < 2)
            return hs_fail(err, HS_ERR_ARGUMENT,
                           "%s: BatchNorm in training mode needs more than one value per "
                           "channel (batch of %d of %d x %d)",
                           l->name, a->n, a->in.h, a->in.w);
        hs_batchnorm_train_forward_ref(a->x, a->n, l->channels, hw, l->weight, l->bias,
                                       l->bn_eps, l->bn_momentum, l->running_mean,
                                       l->running_var, a->saved, a->saved + l->channels, a->y);
        l->bn_batches_tracked++;
    } else {
        hs_batchnorm_forward_ref(a->x, a->n, l->channels, hw, l->weight, l->bias,
                                 l->running_mean, l->running_var, l->bn_eps, a->y);
    }
    return HS_OK;
}

static hs_status bn_backward(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    int hw = a->in.h * a->in.w;
    int grads = a->param_grads && l->dweight;
    float *dg = grads ? l->dweight : NULL, *db = grads ? l->dbias : NULL;
    if (l->bn_mode == HS_BN_TRAIN)
        hs_batchnorm_train_backward_ref(a->x, a->dy, a->n, l->channels, hw, l->weight,
                                        a->saved, a->saved + l->channels, a->dx, dg, db);
    else
        hs_batchnorm_frozen_backward_ref(a->x, a->dy, a->n, l->channels, hw, l->weight,
                                         l->running_mean, l->running_var, l->bn_eps, a->dx,
                                         dg, db);
    return HS_OK;
}

const hs_layer_ops hs_batchnorm_ops = {"batchnorm2d", bn_shape, bn_params, bn_init, bn_tape,
                                       bn_forward, bn_backward, NULL};
